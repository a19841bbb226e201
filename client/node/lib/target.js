'use strict';
// Where a gRPC target leads, as far as the client can tell before dialing
// (the same rules as the C++ and Python clients).

const net = require('node:net');

function isLoopbackHost(host) {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) return false;
    host = host.slice(1, end);
  }
  host = host.split('%')[0]; // An IPv6 zone: fe80::1%eth0.
  const lower = host.toLowerCase();
  if (lower === 'localhost' || lower === 'localhost.') return true;
  if (net.isIPv4(host)) return host.split('.')[0] === '127';
  if (net.isIPv6(host)) {
    if (lower === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(lower)) return true;
    const mapped = lower.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/);
    return Boolean(mapped) && mapped[1].split('.')[0] === '127';
  }
  return false; // Any other name may resolve beyond this host.
}

// The host of host:port, [v6]:port, a bare IPv6 address or a bare host.
function stripPort(address) {
  if (address.startsWith('[')) return address;
  const colons = address.split(':').length - 1;
  return colons === 1 ? address.slice(0, address.lastIndexOf(':')) : address;
}

// True when `target` can only reach this host: unix sockets, localhost,
// 127.0.0.0/8 and ::1, as host:port, dns:[//authority/]host:port or
// ipv4:/ipv6: address lists. Other names, addresses and resolvers are not.
function isLoopbackTarget(target) {
  let t = String(target).trim();
  if (t.startsWith('unix:') || t.startsWith('unix-abstract:')) return true;
  if (t.startsWith('ipv4:') || t.startsWith('ipv6:')) {
    const addresses = t.slice(5).split(',');
    return addresses.length > 0 && addresses.every((a) => isLoopbackHost(stripPort(a)));
  }
  if (t.startsWith('dns:')) {
    t = t.slice(4);
    if (t.startsWith('//')) {
      const slash = t.indexOf('/', 2);
      t = slash < 0 ? '' : t.slice(slash + 1);
    }
  } else if (t.includes('://') || /^[a-z][a-z0-9+.-]*:(?!\d)/.test(t)) {
    return false; // Another resolver (xds:, a custom one): not provably local.
  }
  return t.length > 0 && isLoopbackHost(stripPort(t));
}

module.exports = { isLoopbackTarget };
