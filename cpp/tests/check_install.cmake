# cmake -DBUILD_DIR=<build> -DPREFIX=<empty folder> [-DFORBIDDEN=<path>] -P check_install.cmake
#
# Installs the build into PREFIX and fails when the installed package configuration names a
# file of a Python environment (site-packages, or FORBIDDEN: the build's virtual environment)
# or links a file by its path at all: a program linked to the installed nettrim::core must
# keep working when the environment the library was built in is deleted.
file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}"
                RESULT_VARIABLE result OUTPUT_QUIET)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${PREFIX} failed (${result})")
endif()
file(GLOB configs "${PREFIX}/lib*/cmake/nettrim/*.cmake")
if(NOT configs)
  message(FATAL_ERROR "no package configuration under ${PREFIX}/lib*/cmake/nettrim")
endif()
set(forbidden "site-packages" "dist-packages")
if(FORBIDDEN)
  list(APPEND forbidden "${FORBIDDEN}")
endif()
foreach(config IN LISTS configs)
  file(READ "${config}" text)
  foreach(bad IN LISTS forbidden)
    string(FIND "${text}" "${bad}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${config} names ${bad}, a Python environment the installation must not depend on")
    endif()
  endforeach()
  # The link interface names targets (nettrim::openblas, BLAS::BLAS, Eigen3::Eigen, ...),
  # which the configuration finds again, never a file.
  file(STRINGS "${config}" links REGEX "INTERFACE_LINK_LIBRARIES")
  foreach(line IN LISTS links)
    if(line MATCHES "/")
      message(FATAL_ERROR "${config} links a file by its path: ${line}")
    endif()
  endforeach()
endforeach()
message(STATUS "${PREFIX}: the package configuration names targets only, no Python environment")
