# The CUDA backend (cpp/cuda/), included by CMakeLists.txt only when NETTRIM_CUDA is ON:
# nvcc, the CUDA runtime, cuBLAS and cuSOLVER.  Those libraries come from the toolkit
# (find_package(CUDAToolkit)), or, where the toolkit lacks them, from PyPI's NVIDIA wheels
# (nvidia-cublas, nvidia-cusolver: site-packages/nvidia/cu13/{include,lib}; the -cu12
# wheels' nvidia/<library>/{include,lib} too), found through the Python interpreter or
# NETTRIM_CUDA_LIBRARY_ROOT.  So the backend compiles on a machine without a GPU.

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
  # A100 and H100 machine code, and H100 PTX that later GPUs compile when loading it.
  set(CMAKE_CUDA_ARCHITECTURES "80-real;90" CACHE STRING "CUDA architectures of the CUDA backend")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
if(CUDAToolkit_VERSION VERSION_LESS 12.0)
  message(FATAL_ERROR "nettrim: the CUDA backend needs CUDA 12 or later (the 64-bit cuBLAS API), found ${CUDAToolkit_VERSION}")
endif()

set(NETTRIM_CUDA_LIBRARY_ROOT "" CACHE PATH
    "Folders (;-separated) holding cuBLAS and cuSOLVER as include/ and lib/, for a toolkit without them")
set(_nettrim_cuda_roots ${NETTRIM_CUDA_LIBRARY_ROOT})
if(Python_Interpreter_FOUND)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
      "import os, nvidia; print(';'.join(os.path.join(p, d) for p in nvidia.__path__ for d in ('cu13', 'cublas', 'cusolver', 'cuda_runtime')))"
    OUTPUT_VARIABLE _nettrim_py_roots OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _nettrim_py_result)
  if(_nettrim_py_result EQUAL 0 AND _nettrim_py_roots)
    list(APPEND _nettrim_cuda_roots ${_nettrim_py_roots})
  endif()
endif()

# nettrim_cuda_library(<name> <header>): the variable NETTRIM_CUDA_<name> names what to
# link: CUDA::<name> from the toolkit, or an imported target for a wheel's library.
function(nettrim_cuda_library name header)
  if(TARGET CUDA::${name})
    set(NETTRIM_CUDA_${name} CUDA::${name} PARENT_SCOPE)
    message(STATUS "nettrim: ${name} from the CUDA toolkit")
    return()
  endif()
  set(_libdirs "")
  set(_incdirs "")
  foreach(root IN LISTS _nettrim_cuda_roots)
    list(APPEND _libdirs "${root}/lib" "${root}/lib64")
    list(APPEND _incdirs "${root}/include")
  endforeach()
  find_library(NETTRIM_${name}_LIBRARY NAMES ${name} lib${name}.so.13 lib${name}.so.12
               PATHS ${_libdirs} NO_DEFAULT_PATH)
  find_path(NETTRIM_${name}_INCLUDE_DIR NAMES ${header} PATHS ${_incdirs} NO_DEFAULT_PATH)
  if(NOT NETTRIM_${name}_LIBRARY OR NOT NETTRIM_${name}_INCLUDE_DIR)
    message(FATAL_ERROR "nettrim: NETTRIM_CUDA is ON but ${name} was found neither in the CUDA toolkit "
                        "(${CUDAToolkit_LIBRARY_DIR}) nor in NETTRIM_CUDA_LIBRARY_ROOT or Python's nvidia "
                        "packages (pip install nvidia-cublas nvidia-cusolver)")
  endif()
  add_library(nettrim_cuda_${name} SHARED IMPORTED)
  set_target_properties(nettrim_cuda_${name} PROPERTIES
    IMPORTED_LOCATION "${NETTRIM_${name}_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${NETTRIM_${name}_INCLUDE_DIR}")
  set(NETTRIM_CUDA_${name} "$<BUILD_INTERFACE:nettrim_cuda_${name}>;$<INSTALL_INTERFACE:${NETTRIM_${name}_LIBRARY}>"
      PARENT_SCOPE)
  get_filename_component(_dir "${NETTRIM_${name}_LIBRARY}" DIRECTORY)
  set_property(GLOBAL APPEND PROPERTY NETTRIM_CUDA_WHEEL_LIBDIRS "${_dir}")
  message(STATUS "nettrim: ${name} from ${NETTRIM_${name}_LIBRARY}")
endfunction()

nettrim_cuda_library(cublas cublas_v2.h)
nettrim_cuda_library(cusolver cusolverDn.h)

target_sources(nettrim_core PRIVATE cpp/cuda/cuda_backend.cu)
target_include_directories(nettrim_core PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cpp/cuda)
target_compile_definitions(nettrim_core PUBLIC NETTRIM_WITH_CUDA)
# cuBLAS and cuSOLVER are used by the .cu file alone: their headers stay private.
target_link_libraries(nettrim_core PUBLIC CUDA::cudart ${NETTRIM_CUDA_cublas} ${NETTRIM_CUDA_cusolver})
# (nettrim_core exists before CUDA is enabled: its CUDA properties are set here.)
set_target_properties(nettrim_core PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON CUDA_RUNTIME_LIBRARY Shared
                      CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
if(NOT MSVC)
  target_compile_options(nettrim_core PRIVATE "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>")
endif()
message(STATUS "nettrim: CUDA backend on, CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
