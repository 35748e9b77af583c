# PNEUMOSEG_CUDA = AUTO | ON | OFF. AUTO turns the CUDA/cuDNN backend on when
# a CUDA compiler and cudnn.h are found (e.g. /usr/local/cuda); ON makes their
# absence an error. Sets PNEUMOSEG_HAVE_CUDA.
set(PNEUMOSEG_HAVE_CUDA OFF)
string(TOUPPER "${PNEUMOSEG_CUDA}" _pnx_cuda)
if(NOT _pnx_cuda STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  find_package(CUDAToolkit QUIET)
  find_path(CUDNN_INCLUDE_DIR cudnn.h
            HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include /usr/include)
  find_library(CUDNN_LIBRARY cudnn
               HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu)
  if(CMAKE_CUDA_COMPILER AND CUDAToolkit_FOUND AND CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
    set(PNEUMOSEG_HAVE_CUDA ON)
  elseif(_pnx_cuda STREQUAL "ON")
    message(FATAL_ERROR "PNEUMOSEG_CUDA=ON but the CUDA toolkit or cuDNN was not found "
                        "(compiler='${CMAKE_CUDA_COMPILER}', cudnn.h='${CUDNN_INCLUDE_DIR}', "
                        "libcudnn='${CUDNN_LIBRARY}')")
  endif()
endif()
if(PNEUMOSEG_HAVE_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    # Hopper (H100/H200) is the target GPU; PTX for 8.0 runs on later cards.
    set(CMAKE_CUDA_ARCHITECTURES 80-virtual 90)
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  add_library(pnx_cudnn INTERFACE)
  target_include_directories(pnx_cudnn INTERFACE "${CUDNN_INCLUDE_DIR}")
  target_link_libraries(pnx_cudnn INTERFACE "${CUDNN_LIBRARY}" CUDA::cudart CUDA::cublas)
  message(STATUS "pneumoseg: CUDA/cuDNN backend ON (cudnn: ${CUDNN_LIBRARY})")
else()
  message(STATUS "pneumoseg: CUDA/cuDNN backend OFF")
endif()
