# install.cmake: what `cmake --install` puts where (GNUInstallDirs, relative to the prefix), and
# the Debian package CPack makes of it (`make package`, docs/install.md).
#
# The layout is the one common/paths.c expects beside the binary, so an installed cellblock finds
# its own files under its own prefix and nowhere else:
#   bin/cellblock, libexec/cellblock/cellblock-init, share/cellblock/{kernels,templates,lab},
#   share/man/man1/cellblock*.1, share/doc/cellblock/, lib/systemd/system/cellblock.service

install(TARGETS cellblock RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS cellblock-init RUNTIME DESTINATION ${CB_LIBEXEC_SUBDIR})
# The kernelspecs only: kernels/kernel and kernels/drivers are the sources of cellblock-kernel and
# its language drivers, which go to libexec as programs.
install(DIRECTORY kernels/ DESTINATION ${CB_DATA_SUBDIR}/kernels
        PATTERN "kernel" EXCLUDE PATTERN "drivers" EXCLUDE)
install(DIRECTORY templates/ DESTINATION ${CB_DATA_SUBDIR}/templates)
# The jupyter_server extension `cellblock lab` loads (docs/jupyterlab.md).
install(FILES lab/cellblock_lab.py DESTINATION ${CB_DATA_SUBDIR}/lab)

# Man pages, compressed as Debian's policy asks (gzip -n: no name or time stamp, so the package
# builds the same twice).
file(GLOB CB_MAN_PAGES RELATIVE "${PROJECT_SOURCE_DIR}/man" "${PROJECT_SOURCE_DIR}/man/*.1")
set(CB_MAN_GZ)
foreach(page ${CB_MAN_PAGES})
  set(gz "${CMAKE_BINARY_DIR}/man/${page}.gz")
  add_custom_command(OUTPUT "${gz}"
                     COMMAND ${CMAKE_COMMAND} -E make_directory "${CMAKE_BINARY_DIR}/man"
                     COMMAND gzip -9n -c "${PROJECT_SOURCE_DIR}/man/${page}" > "${gz}"
                     DEPENDS "${PROJECT_SOURCE_DIR}/man/${page}" VERBATIM)
  list(APPEND CB_MAN_GZ "${gz}")
endforeach()
add_custom_target(cb_man ALL DEPENDS ${CB_MAN_GZ})
install(FILES ${CB_MAN_GZ} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs)

# The systemd unit names the installed binary, so it is written at install time from the prefix
# actually installed to (cmake --install --prefix, or /usr when CPack builds the package) rather
# than the one configured. systemd reads units from <prefix>/lib/systemd/system for /usr and
# /usr/local alike.
option(CB_INSTALL_SYSTEMD_UNIT "Install the systemd unit that runs cellblock serve" ON)
if(CB_INSTALL_SYSTEMD_UNIT)
  install(CODE "
    set(unit_in \"${PROJECT_SOURCE_DIR}/packaging/cellblock.service.in\")
    set(bindir \"${CMAKE_INSTALL_BINDIR}\")
    if(NOT IS_ABSOLUTE \"\${bindir}\")
      set(bindir \"\${CMAKE_INSTALL_PREFIX}/\${bindir}\")
    endif()
    file(READ \"\${unit_in}\" unit)
    string(REPLACE \"@CB_BINDIR@\" \"\${bindir}\" unit \"\${unit}\")
    set(dest \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\")
    message(STATUS \"Installing: \${dest}/cellblock.service\")
    file(MAKE_DIRECTORY \"\${dest}\")
    file(WRITE \"\${dest}/cellblock.service\" \"\${unit}\")
    list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system/cellblock.service\")
  ")
endif()

# The Debian package: `make package` (cpack -G DEB in the build tree). Everything under /usr;
# /etc/cellblock/cellblock.env (the token) and /var/lib/cellblock (state) are made by postinst
# and removed on purge by postrm, so the package ships no conffile holding a secret.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cellblock)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "cellblock maintainers <cellblock@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "self-hosted sandboxes for running code, with Jupyter kernels (MCP and Jupyter API)")
# CPack indents every line after the first by one space, as the control file wants.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "cellblock starts real Jupyter kernels, each inside its own sandbox (namespaces, seccomp,
cgroups, no network), and serves them to AI assistants over MCP (stdio or Streamable
HTTP) and to Jupyter clients over the Jupyter Kernel Gateway API. The cellblock service
runs `cellblock serve` on 127.0.0.1:8888 with the token in /etc/cellblock/cellblock.env.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_STRIP_FILES ON)
# What the kernels and templates run: the python3 kernelspec is Debian's ipykernel; the
# python-data template imports numpy, pandas and matplotlib and plots through matplotlib-inline.
# The shared libraries' packages come with their versions from dpkg-shlibdeps (dpkg-dev, which
# build-essential brings: libzmq5, libczmq4, libjansson4, libssl3, libseccomp2, libwebsockets17,
# libhttp-parser2.9, libvterm0, libc6); without it they are named here, unversioned.
set(CB_DEB_DEPENDS
    "python3, python3-ipykernel, python3-numpy, python3-pandas, python3-matplotlib, python3-matplotlib-inline")
find_program(CB_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(CB_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "${CB_DEB_DEPENDS}")
else()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "libzmq5, libczmq4, libjansson4, libssl3, libseccomp2, libwebsockets17, libhttp-parser2.9, libvterm0, ${CB_DEB_DEPENDS}")
endif()
# The other languages' toolchains: each kernel works when its package is there and is listed as
# unavailable, naming the package, when it is not (metadata.cellblock.requires in its
# kernel.json), so they are recommended, not required. r-base-core brings hundreds of packages
# with its own recommends; scripts/install-deps.sh installs these without recommends.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS
    "nodejs, node-typescript, r-base-core, r-cran-irkernel, openjdk-17-jdk-headless, ruby, gcc, g++, rustc, cargo, golang-go")
# pip and npm for installs at run time inside sandboxes (code_execute's packages, `pip install`).
string(APPEND CPACK_DEBIAN_PACKAGE_RECOMMENDS ", python3-pip, npm")
# `cellblock lab` runs jupyter_server (with nbformat) on the person's side (docs/jupyterlab.md).
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "python3-jupyter-server, python3-nbformat")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/packaging/deb/postinst;${PROJECT_SOURCE_DIR}/packaging/deb/prerm;${PROJECT_SOURCE_DIR}/packaging/deb/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
