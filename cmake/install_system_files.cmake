# Run by cmake --install (and cpack) for the runtime component: writes the
# systemd unit and the default config for the prefix being installed to.
# With prefix /usr (the .deb) the config lives in /etc/corral, as Debian
# wants; with any other prefix P in P/etc/corral, so that a trial install
# touches nothing outside P. The unit is deploy/systemd/corrald.service with
# its paths pointed at this prefix, and User=corral: the .deb's postinst
# creates that system user; without it systemd's DynamicUser= (kept) makes
# a transient one of the same name.
# Set by cmake/install.cmake: CORRAL_SOURCE_DIR, CORRAL_STAGING_DIR, CORRAL_DOCDIR.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(corral_etc "/etc/corral")
else()
  set(corral_etc "${CMAKE_INSTALL_PREFIX}/etc/corral")
endif()

file(READ "${CORRAL_SOURCE_DIR}/deploy/systemd/corrald.service" unit)
foreach(from_to
    "/usr/local/bin/corrald|${CMAKE_INSTALL_PREFIX}/bin/corrald"
    "/usr/local/share/doc/corral|${CMAKE_INSTALL_PREFIX}/${CORRAL_DOCDIR}"
    "/etc/corral/|${corral_etc}/"
    "DynamicUser=yes|User=corral\nGroup=corral\nDynamicUser=yes")
  string(REPLACE "|" ";" pair "${from_to}")
  list(GET pair 0 from)
  list(GET pair 1 to)
  string(FIND "${unit}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "corral: deploy/systemd/corrald.service has no '${from}' to rewrite")
  endif()
  string(REPLACE "${from}" "${to}" unit "${unit}")
endforeach()
# One staging file per destination: a prefix install and cpack may run at once.
string(MD5 destination "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}")
set(staged "${CORRAL_STAGING_DIR}/${destination}/corrald.service")
file(WRITE "${staged}" "${unit}")

file(INSTALL "${staged}"
     DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL "${CORRAL_SOURCE_DIR}/deploy/config/corrald.textproto"
     DESTINATION "${corral_etc}"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
