# The installable library (docs/USAGE.md, "The library"): `cmake --install` puts
#   include/musicgen/*.h                        the public headers
#   lib/libmusicgen.a                           every internal layer merged into one archive
#   lib/libmusicgen.so[.0[.x.y.z]]              the same objects as one shared library
#   lib/cmake/musicgen/musicgen{Config,ConfigVersion}.cmake   find_package(musicgen)
#   lib/pkgconfig/musicgen.pc                   pkg-config
# The layers stay separate static libraries inside the build (tests link them one by one).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

option(MUSICGEN_INSTALL_LIBRARY "Build libmusicgen.a/.so for cmake --install" ON)
if(NOT MUSICGEN_INSTALL_LIBRARY OR MUSICGEN_FUZZ OR MUSICGEN_SANITIZE)
  return()  # nothing to install from sanitizer or fuzzing builds
endif()

# Every static layer of the library, lowest last (the order does not matter for the merge).
set(MUSICGEN_LAYERS musicgen musicgen_generation musicgen_models musicgen_audio musicgen_tokenizer
  musicgen_hub musicgen_nn musicgen_format musicgen_kernels musicgen_core)
if(MUSICGEN_HAVE_VULKAN)
  list(APPEND MUSICGEN_LAYERS musicgen_gpu)
endif()
# The Debian packages behind the layers' dependencies, as pkg-config names: the .pc file's
# Requires.private and what musicgenConfig.cmake finds for the static library. Read from what the
# layers link; a dependency missing from this map stops the configure step.
set(_pkgconfig_of_PkgConfig::SENTENCEPIECE sentencepiece)
set(_pkgconfig_of_PkgConfig::SNDFILE sndfile)
set(_pkgconfig_of_PkgConfig::SOXR soxr)
set(_pkgconfig_of_PkgConfig::FFTW3 fftw3)
set(_pkgconfig_of_PkgConfig::EBUR128 libebur128)
set(_pkgconfig_of_PkgConfig::HIREDIS hiredis)
set(_pkgconfig_of_CURL::libcurl libcurl)
set(_pkgconfig_of_OpenSSL::Crypto libcrypto)
set(MUSICGEN_PKGCONFIG_DEPS)
foreach(l ${MUSICGEN_LAYERS})
  get_target_property(_deps ${l} LINK_LIBRARIES)
  foreach(d ${_deps})
    if(d MATCHES "^musicgen" OR d MATCHES "^Threads::" OR d MATCHES "nlohmann_json" OR
       d STREQUAL "${CMAKE_DL_LIBS}" OR d MATCHES "^\\$<")
      continue()
    endif()
    if(NOT DEFINED _pkgconfig_of_${d})
      message(FATAL_ERROR "cmake/install.cmake: ${l} links ${d}; add its pkg-config name to the map")
    endif()
    list(APPEND MUSICGEN_PKGCONFIG_DEPS ${_pkgconfig_of_${d}})
  endforeach()
endforeach()
list(REMOVE_DUPLICATES MUSICGEN_PKGCONFIG_DEPS)

set(_layer_files)
foreach(l ${MUSICGEN_LAYERS})
  list(APPEND _layer_files "$<TARGET_FILE:${l}>")
endforeach()

# One archive: an ar MRI script adds every layer's members.
set(_merged ${CMAKE_BINARY_DIR}/libmusicgen-install/libmusicgen.a)
set(_mri "create ${_merged}\n")
foreach(f ${_layer_files})
  string(APPEND _mri "addlib ${f}\n")
endforeach()
string(APPEND _mri "save\nend\n")
file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/libmusicgen-install/merge.mri CONTENT "${_mri}")
add_custom_command(OUTPUT ${_merged}
  COMMAND ${CMAKE_COMMAND} -E rm -f ${_merged}
  COMMAND ${CMAKE_AR} -M < ${CMAKE_BINARY_DIR}/libmusicgen-install/merge.mri
  DEPENDS ${MUSICGEN_LAYERS} ${CMAKE_BINARY_DIR}/libmusicgen-install/merge.mri
  COMMENT "merging the layers into libmusicgen.a" VERBATIM)
add_custom_target(musicgen_static_merged ALL DEPENDS ${_merged})

# The shared library: every member of every layer (--whole-archive), their dependencies as the
# layers declare them (linking `musicgen` brings them all, transitively).
file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/libmusicgen-install/empty.cpp CONTENT "")
add_library(musicgen_shared SHARED ${CMAKE_BINARY_DIR}/libmusicgen-install/empty.cpp)
set_target_properties(musicgen_shared PROPERTIES OUTPUT_NAME musicgen
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/libmusicgen-install)
add_dependencies(musicgen_shared ${MUSICGEN_LAYERS})
target_link_libraries(musicgen_shared PRIVATE
  "-Wl,--whole-archive" ${_layer_files} "-Wl,--no-whole-archive" musicgen ${MUSICGEN_LAYERS})
target_link_options(musicgen_shared PRIVATE "-Wl,--no-undefined")

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/musicgen DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${_merged} DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS musicgen_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

string(REPLACE ";" " " MUSICGEN_PC_REQUIRES_PRIVATE "${MUSICGEN_PKGCONFIG_DEPS}")
set(MUSICGEN_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/musicgen)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/musicgenConfig.cmake.in
  ${CMAKE_BINARY_DIR}/libmusicgen-install/musicgenConfig.cmake
  INSTALL_DESTINATION ${MUSICGEN_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/libmusicgen-install/musicgenConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/libmusicgen-install/musicgenConfig.cmake
  ${CMAKE_BINARY_DIR}/libmusicgen-install/musicgenConfigVersion.cmake
  DESTINATION ${MUSICGEN_CMAKE_DIR})

# pkg-config: the prefix relative to the .pc file, so that `cmake --install --prefix P` anywhere works.
file(RELATIVE_PATH MUSICGEN_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
string(REGEX REPLACE "/$" "" MUSICGEN_PC_TO_PREFIX "${MUSICGEN_PC_TO_PREFIX}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/musicgen.pc.in
  ${CMAKE_BINARY_DIR}/libmusicgen-install/musicgen.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/libmusicgen-install/musicgen.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
