# cpack -G DEB (from the build directory): corral_<version>_<arch>.deb with the
# runtime component (cmake/install.cmake) under prefix /usr:
#   /usr/bin/corrald, /usr/bin/corralctl, /usr/lib/systemd/system/corrald.service,
#   /etc/corral/corrald.textproto (a conffile), /usr/share/doc/corral/,
# and maintainer scripts from deploy/debian/ (postinst makes the `corral`
# system user). Runtime dependencies come from dpkg-shlibdeps (dpkg-dev).
set(CPACK_PACKAGE_NAME corral)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "corral maintainers <corral@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "fleet-wide cache-stampede protection as a gRPC service")
set(CPACK_PACKAGE_DESCRIPTION
  "corrald answers cache lookups and, on a miss, lets exactly one caller fleet-wide compute while the others wait; per-key locks with fencing tokens and a shared circuit breaker. corralctl is its command-line client.")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# DESTDIR staging keeps CMAKE_INSTALL_PREFIX=/usr at install time, which is
# how cmake/install_system_files.cmake puts the config in /etc/corral.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "redis-server (>= 5:7)")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
  ${PROJECT_SOURCE_DIR}/deploy/debian/prerm
  ${PROJECT_SOURCE_DIR}/deploy/debian/postrm
  ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles)
include(CPack)
