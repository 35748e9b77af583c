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
else()
  add_test(NAME test_cuda_emu
           COMMAND sh -c "echo 'test_cuda_emu: skipped, no CUDA toolkit headers (cuda_bf16.h)'; exit 77")
  set_tests_properties(test_cuda_emu PROPERTIES SKIP_RETURN_CODE 77 LABELS model)
endif()
