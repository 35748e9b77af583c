pnx_add_test(NAME test_config SOURCES test_config.c LIBS pnx_config)
