# The engine end to end on a private PostgreSQL and real MPI ranks: ingest, drain,
# products rows and FITS files; failure categories; kill -9 of a worker and of rank 0;
# a database outage journaled and replayed.
add_test(NAME test_engine COMMAND ${BASH_PROGRAM} ${CMAKE_CURRENT_SOURCE_DIR}/test_engine.sh
                                  $<TARGET_FILE:contimg>)
set_tests_properties(test_engine PROPERTIES LABELS mpi TIMEOUT 1200 RUN_SERIAL TRUE)

# The same under a real one-node Slurm: sbatch slurm/contimg.sbatch drains the queue, and
# SIGUSR1 to the observing allocation drains it cleanly.
add_test(NAME test_slurm COMMAND ${BASH_PROGRAM} ${CMAKE_CURRENT_SOURCE_DIR}/test_slurm.sh
                                 $<TARGET_FILE:contimg>)
set_tests_properties(test_slurm PROPERTIES LABELS mpi TIMEOUT 900 RUN_SERIAL TRUE)

# Chains, the journal and the stage rules, without MPI ranks or a database.
add_executable(test_chain test_chain.c)
target_link_libraries(test_chain PRIVATE contimg_testutil contimg_engine)
add_test(NAME test_chain COMMAND test_chain)
set_tests_properties(test_chain PROPERTIES LABELS nompi)
