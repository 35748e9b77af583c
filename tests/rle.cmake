# rle/ tests: the codec (vectors, malformed strings, random round trips),
# the CSV reader/index/writer, and the real SIIM train file when present.
pnx_add_test(NAME test_rle SOURCES test_rle.c LIBS pnx_rle)
pnx_add_test(NAME test_rle_csv SOURCES test_rle_csv.c LIBS pnx_rle)
pnx_add_test(NAME test_rle_real SOURCES test_rle_real.c LIBS pnx_rle TIMEOUT 300)
