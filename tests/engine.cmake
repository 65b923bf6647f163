# The engine end to end on a private PostgreSQL and real MPI ranks: ingest, drain,
# products rows and FITS files; failure categories; kill -9 of a worker and of rank 0;
# a database outage journaled and replayed.
add_test(NAME test_engine COMMAND ${BASH_PROGRAM} ${CMAKE_CURRENT_SOURCE_DIR}/test_engine.sh
                                  $<TARGET_FILE:contimg>)
set_tests_properties(test_engine PROPERTIES LABELS mpi TIMEOUT 1200 RUN_SERIAL TRUE)
