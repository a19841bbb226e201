# Install rules: cmake --install BUILD [--prefix P]. Two components:
#   runtime  corrald and corralctl (bin/), the systemd unit, the default
#            config (etc/corral/; /etc/corral for prefix /usr), OPERATIONS.md;
#            this is what the .deb carries (cmake/package.cmake).
#   dev      the client library (corral::client, corral::proto), its headers
#            under include/corral/ with the umbrella <corral/client.h>, the
#            generated proto headers (include/corral/v1/), and
#            lib/cmake/corral/ for find_package(corral).
include(CMakePackageConfigHelpers)

set(CORRAL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/corral)

# --- runtime ---------------------------------------------------------------
install(TARGETS corrald corralctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
install(FILES ${PROJECT_SOURCE_DIR}/docs/OPERATIONS.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)
# The unit and config paths depend on the prefix given at install time, so a
# script writes them then (cmake/install_system_files.cmake).
install(CODE "set(CORRAL_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
set(CORRAL_STAGING_DIR \"${PROJECT_BINARY_DIR}/install-staging\")
set(CORRAL_DOCDIR \"${CMAKE_INSTALL_DOCDIR}\")"
        COMPONENT runtime)
install(SCRIPT ${PROJECT_SOURCE_DIR}/cmake/install_system_files.cmake COMPONENT runtime)

# --- dev -------------------------------------------------------------------
install(TARGETS corral_client corral_proto EXPORT corralTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(FILES ${PROJECT_SOURCE_DIR}/client/cpp/include/corral/client.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/corral COMPONENT dev)
# The public headers only: call.h and convert.h are the library's own.
install(FILES
          ${PROJECT_SOURCE_DIR}/client/cpp/corral_client.h
          ${PROJECT_SOURCE_DIR}/client/cpp/credentials.h
          ${PROJECT_SOURCE_DIR}/client/cpp/errors.h
          ${PROJECT_SOURCE_DIR}/client/cpp/lock_guard.h
          ${PROJECT_SOURCE_DIR}/client/cpp/retry.h
          ${PROJECT_SOURCE_DIR}/client/cpp/types.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/corral/client/cpp COMPONENT dev)
install(DIRECTORY ${PROJECT_BINARY_DIR}/proto/corral/v1/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/corral/v1 COMPONENT dev
        FILES_MATCHING PATTERN "*.pb.h")
install(FILES ${PROJECT_SOURCE_DIR}/proto/corral/v1/corral.proto
              ${PROJECT_SOURCE_DIR}/proto/corral/v1/config.proto
        DESTINATION ${CMAKE_INSTALL_DATADIR}/corral/proto/corral/v1 COMPONENT dev)

# A sanitizer build's libraries need the sanitizer runtimes wherever they are
# linked, consumers included (scripts/test.sh --sanitize runs install_cpp).
if(CORRAL_SANITIZE)
  target_link_options(corral_client INTERFACE -fsanitize=address,undefined)
endif()
install(EXPORT corralTargets NAMESPACE corral:: DESTINATION ${CORRAL_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/corralConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/corralConfig.cmake
  INSTALL_DESTINATION ${CORRAL_CMAKE_DIR})
# 0.x: a minor release may break the API, so only the same minor matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/corralConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/corralConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/corralConfigVersion.cmake
        DESTINATION ${CORRAL_CMAKE_DIR} COMPONENT dev)
