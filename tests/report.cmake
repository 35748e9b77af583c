# The report (pipeline/report_stage.c, pipeline/cmd_report.c) and its
# queries (db/report.c): a page from a hand-built database.
if(TARGET pnx_db)
  pnx_add_test(NAME test_report
    SOURCES test_report.c ${PROJECT_SOURCE_DIR}/pipeline/report_stage.c
            ${PROJECT_SOURCE_DIR}/pipeline/png_io.c
    LIBS pnx_db pnx_common PNG::PNG SQLite::SQLite3 ${M_LIBRARY})
endif()
