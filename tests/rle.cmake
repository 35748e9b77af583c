# rle/ tests: the codec (vectors, malformed strings, random round trips),
# the CSV reader/index/writer, and the real SIIM train file when present.
pnx_add_test(NAME test_rle SOURCES test_rle.c LIBS pnx_rle)
pnx_add_test(NAME test_rle_csv SOURCES test_rle_csv.c LIBS pnx_rle)
pnx_add_test(NAME test_rle_real SOURCES test_rle_real.c LIBS pnx_rle TIMEOUT 300)
# `pneumoseg rle` driven as a user would; reads its PNGs with pipeline/png_io.c.
pnx_add_test(NAME test_rle_cli
  SOURCES test_rle_cli.c ${PROJECT_SOURCE_DIR}/pipeline/png_io.c
  LIBS pnx_common PNG::PNG)
add_dependencies(test_rle_cli pneumoseg)
