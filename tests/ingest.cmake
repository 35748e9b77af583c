# ingest/ tests: the decoding rule, the walk and known pixels (test_ingest);
# the isolated pool on malformed files and every transfer syntax
# (test_ingest_pool); the ledger rows and `pneumoseg ingest` end to end
# (test_ingest_db).
if(TARGET pnx_ingest)
  pnx_add_test(NAME test_ingest SOURCES test_ingest.c test_ingest_gen.c
               LIBS pnx_ingest pnx_common)
  if(EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/test_ingest_pool.c")
    pnx_add_test(NAME test_ingest_pool SOURCES test_ingest_pool.c test_ingest_gen.c
                 LIBS pnx_ingest pnx_common TIMEOUT 120)
  endif()
endif()
if(TARGET pnx_db AND EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/test_ingest_db.c")
  pnx_add_test(NAME test_ingest_db SOURCES test_ingest_db.c test_ingest_gen.c
               LIBS pnx_db pnx_common SQLite::SQLite3 PNG::PNG TIMEOUT 120)
  if(TARGET pneumoseg)
    add_dependencies(test_ingest_db pneumoseg)
  endif()
endif()
