# Drives the built pneumoseg binary; built after it.
pnx_add_test(NAME test_cli SOURCES test_cli.c LIBS pnx_common)
add_dependencies(test_cli pneumoseg)
