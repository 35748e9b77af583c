# GPU tests (issue 6): the CUDA backend against the reference ops (float32,
# and mixed precision in test_gpu_ops_bf16) and the whole U-Net against the
# reference backend. Plain C, no cmocka, so the same sources build on a GPU
# host without the Debian libraries (docs/gpu.md).
# Label gpu; without a GPU (or without CUDA in the build) they exit 77 and
# ctest reports them skipped.
if(TARGET pnx_model)
  foreach(_gpu_test test_gpu_ops test_gpu_ops_bf16 test_gpu_unet test_gpu_learn)
    add_executable(${_gpu_test} ${_gpu_test}.c)
    target_link_libraries(${_gpu_test} PRIVATE pnx_model)
    # The tree's build has the CPU backend, a stand-in for checking the tests
    # themselves without a GPU (PNX_GPU_TEST_STANDIN=cpu).
    target_compile_definitions(${_gpu_test} PRIVATE PNX_TEST_CPU_BACKEND=1)
    add_test(NAME ${_gpu_test} COMMAND ${_gpu_test})
    set_tests_properties(${_gpu_test} PROPERTIES SKIP_RETURN_CODE 77 LABELS gpu TIMEOUT 600
                         WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  endforeach()
endif()
