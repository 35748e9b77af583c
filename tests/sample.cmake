# sample_dicom/ and its generator (tools/gen_sample/): the committed files
# verify with dciodvfy, the CSV matches the tree exactly, the generator
# reproduces the committed bytes, and the painted lesions look as promised.
if(TARGET pnx_gen_sample)
  pnx_add_test(NAME test_sample_csv SOURCES test_sample_csv.c LIBS pnx_rle pnx_common)
  pnx_add_test(NAME test_sample_dciodvfy SOURCES test_sample_dciodvfy.c LIBS pnx_common)
  pnx_add_test(NAME test_sample_reproduce SOURCES test_sample_reproduce.c LIBS pnx_common
               TIMEOUT 120)
  target_compile_definitions(test_sample_reproduce PRIVATE
    PNX_GEN_SAMPLE_EXE="$<TARGET_FILE:gen_sample>")
  add_dependencies(test_sample_reproduce gen_sample)
  pnx_add_test(NAME test_sample_picture SOURCES test_sample_picture.c LIBS pnx_gen_sample)
endif()
