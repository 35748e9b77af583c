# The bfloat16 NHWC kernels (model/cuda/bf16_kernels.cu, bf16_reduce.cu,
# bf16_narrow.cu) on the CPU: a host C++ compiler builds those files with the
# grid emulator (tests/cuda_emu.h) included first, and test_cuda_emu checks
# every launcher against the reference ops. Needs only the CUDA toolkit's headers (cuda_bf16.h), no
# GPU and no nvcc; where they are absent the test is registered as skipped.
unset(_pnx_emu_cuda_inc)
if(CUDAToolkit_FOUND)
  find_path(_pnx_emu_cuda_inc cuda_bf16.h HINTS ${CUDAToolkit_INCLUDE_DIRS} NO_CACHE)
endif()
if(_pnx_emu_cuda_inc AND TARGET pnx_model)
  set(_pnx_bfk_sources "${PROJECT_SOURCE_DIR}/model/cuda/bf16_kernels.cu"
                       "${PROJECT_SOURCE_DIR}/model/cuda/bf16_reduce.cu"
                       "${PROJECT_SOURCE_DIR}/model/cuda/bf16_narrow.cu")
  # In this directory only: the .cu files are C++ for the host compiler.
  set_source_files_properties(${_pnx_bfk_sources} PROPERTIES LANGUAGE CXX)
  add_library(pnx_bfk_emu OBJECT ${_pnx_bfk_sources})
  target_include_directories(pnx_bfk_emu SYSTEM PRIVATE "${_pnx_emu_cuda_inc}")
  target_compile_options(pnx_bfk_emu PRIVATE -include "${CMAKE_CURRENT_SOURCE_DIR}/cuda_emu.h")
  pnx_add_test(NAME test_cuda_emu SOURCES test_cuda_emu.cc $<TARGET_OBJECTS:pnx_bfk_emu>
               LIBS pnx_model LABELS model TIMEOUT 600)
  target_include_directories(test_cuda_emu SYSTEM PRIVATE "${_pnx_emu_cuda_inc}")

  # The FP32 kernels (model/cuda/cuda_kernels.cu) need block cooperation
  # (shared memory, __syncthreads): the fiber emulator (cuda_emu_fibers.h).
  # A host compiler cannot parse `k<<<grid, block, shmem, stream>>>(args)`;
  # a copy with each launch rewritten to `k % pnx_emu_cfg(grid, block, shmem,
  # stream)(args)` is compiled instead (`#line` keeps messages pointing at
  # the original). The copy is regenerated whenever cuda_kernels.cu changes
  # (a configure dependency); a launch the rewrite misses fails the build.
  set(_pnx_cuk_source "${PROJECT_SOURCE_DIR}/model/cuda/cuda_kernels.cu")
  set(_pnx_cuk_host "${CMAKE_CURRENT_BINARY_DIR}/cuda_kernels_host.cc")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_pnx_cuk_source}")
  file(READ "${_pnx_cuk_source}" _pnx_cuk_text)
  string(REGEX MATCHALL "<<<" _pnx_cuk_opens "${_pnx_cuk_text}")
  string(REGEX MATCHALL ">>>" _pnx_cuk_closes "${_pnx_cuk_text}")
  list(LENGTH _pnx_cuk_opens _pnx_cuk_launches)
  list(LENGTH _pnx_cuk_closes _pnx_cuk_launch_ends)
  if(_pnx_cuk_launches EQUAL 0 OR NOT _pnx_cuk_launches EQUAL _pnx_cuk_launch_ends)
    message(FATAL_ERROR "cuda_kernels.cu: ${_pnx_cuk_launches} '<<<' against "
                        "${_pnx_cuk_launch_ends} '>>>': the launch rewrite cannot pair them")
  endif()
  string(REPLACE "<<<" " % pnx_emu_cfg(" _pnx_cuk_text "${_pnx_cuk_text}")
  string(REPLACE ">>>" ")" _pnx_cuk_text "${_pnx_cuk_text}")
  string(REGEX MATCHALL "pnx_emu_cfg\\(" _pnx_cuk_rewritten "${_pnx_cuk_text}")
  list(LENGTH _pnx_cuk_rewritten _pnx_cuk_rewritten_n)
  if(NOT _pnx_cuk_rewritten_n EQUAL _pnx_cuk_launches OR _pnx_cuk_text MATCHES "<<<|>>>")
    message(FATAL_ERROR "cuda_kernels.cu: the launch rewrite left launches behind "
                        "(${_pnx_cuk_rewritten_n} rewritten of ${_pnx_cuk_launches})")
  endif()
  set(_pnx_cuk_text "#line 1 \"${_pnx_cuk_source}\"\n${_pnx_cuk_text}")
  set(_pnx_cuk_old "")
  if(EXISTS "${_pnx_cuk_host}")
    file(READ "${_pnx_cuk_host}" _pnx_cuk_old)
  endif()
  if(NOT _pnx_cuk_old STREQUAL _pnx_cuk_text)
    file(WRITE "${_pnx_cuk_host}" "${_pnx_cuk_text}")
  endif()
  add_library(pnx_cuk_emu OBJECT "${_pnx_cuk_host}")
  target_include_directories(pnx_cuk_emu PRIVATE "${PROJECT_SOURCE_DIR}")
  target_include_directories(pnx_cuk_emu SYSTEM PRIVATE "${_pnx_emu_cuda_inc}")
  # -ffp-contract=off: a product then a sum round as nvcc's __fmul_rn and
  # ops_ref.c round them. #pragma unroll means nothing to the host compiler.
  target_compile_options(pnx_cuk_emu PRIVATE -include
                         "${CMAKE_CURRENT_SOURCE_DIR}/cuda_emu_fibers.h" -ffp-contract=off
                         -Wno-unknown-pragmas)
  pnx_add_test(NAME test_cuda_emu_fp32 SOURCES test_cuda_emu_fp32.cc
               $<TARGET_OBJECTS:pnx_cuk_emu> LIBS pnx_model LABELS model TIMEOUT 600)
  target_include_directories(test_cuda_emu_fp32 SYSTEM PRIVATE "${_pnx_emu_cuda_inc}")
  target_compile_options(test_cuda_emu_fp32 PRIVATE -ffp-contract=off)
else()
  add_test(NAME test_cuda_emu
           COMMAND sh -c "echo 'test_cuda_emu: skipped, no CUDA toolkit headers (cuda_bf16.h)'; exit 77")
  set_tests_properties(test_cuda_emu PROPERTIES SKIP_RETURN_CODE 77 LABELS model)
  add_test(NAME test_cuda_emu_fp32
           COMMAND sh -c "echo 'test_cuda_emu_fp32: skipped, no CUDA toolkit headers'; exit 77")
  set_tests_properties(test_cuda_emu_fp32 PROPERTIES SKIP_RETURN_CODE 77 LABELS model)
endif()
