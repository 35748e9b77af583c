pnx_add_test(NAME test_db SOURCES test_db.c LIBS pnx_db)
