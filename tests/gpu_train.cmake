# issue 6, the GPU benchmark and the learning run:
# - test_gpu_train: a short training run of the built pneumoseg on
#   sample_dicom/ learns on the GPU, in fp32 and in bf16 mixed precision.
#   Label gpu; without a GPU it exits 77 and ctest reports it skipped
#   (PNX_GPU_TEST_STANDIN=cpu runs it on the CPU, a check of the test).
# - test_bench_gpu: bench/gpu/'s batch search and table of card peaks, which
#   need no GPU (label model).
if(TARGET pneumoseg AND TARGET pnx_model AND TARGET pnx_preprocess)
  add_executable(test_gpu_train test_gpu_train.c)
  target_link_libraries(test_gpu_train PRIVATE pnx_model pnx_preprocess SQLite::SQLite3)
  target_compile_definitions(test_gpu_train PRIVATE
    PNX_SOURCE_DIR="${PROJECT_SOURCE_DIR}" PNX_BINARY_DIR="${PROJECT_BINARY_DIR}")
  add_dependencies(test_gpu_train pneumoseg)
  add_test(NAME test_gpu_train COMMAND test_gpu_train)
  set_tests_properties(test_gpu_train PROPERTIES SKIP_RETURN_CODE 77 LABELS gpu TIMEOUT 900
                       WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
endif()
pnx_add_test(NAME test_bench_gpu
             SOURCES test_bench_gpu.c ${PROJECT_SOURCE_DIR}/bench/gpu/fit_batch.c
                     ${PROJECT_SOURCE_DIR}/bench/gpu/gpu_peaks.c
             LIBS pnx_common LABELS model)
