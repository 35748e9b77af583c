pnx_add_test(NAME test_common SOURCES test_common.c LIBS pnx_common)
