# Source finding (issue 18): completeness, false detections, fluxes, positions and sizes
# against simulated restored images whose sources are known; then `contimg sources` on
# one written as FITS (JSON, CSV, exit codes).
add_executable(test_sources test_sources.c)
target_link_libraries(test_sources PRIVATE contimg_testutil contimg_sources)
add_test(NAME test_sources COMMAND test_sources)
set_tests_properties(test_sources PROPERTIES LABELS nompi TIMEOUT 300)
add_test(NAME test_sources_cli
         COMMAND ${BASH_PROGRAM} ${CMAKE_CURRENT_SOURCE_DIR}/test_sources_cli.sh
                 $<TARGET_FILE:contimg> $<TARGET_FILE:test_sources>)
set_tests_properties(test_sources_cli PROPERTIES LABELS nompi TIMEOUT 120)
# The stages after imaging under the engine (validation, crossmatch, photometry and the
# light curves' variability) on a night of twelve images; a database of its own.
add_test(NAME test_science
         COMMAND ${BASH_PROGRAM} ${CMAKE_CURRENT_SOURCE_DIR}/test_science.sh
                 $<TARGET_FILE:contimg> $<TARGET_FILE:test_sources>)
set_tests_properties(test_science PROPERTIES FIXTURES_REQUIRED postgres
                                             ENVIRONMENT "${TEST_ENV}" LABELS mpi TIMEOUT 300)
# The "standard" chain end to end on a small night of three simulated drift scans with a
# fixed sky: every step completes, every product row is there once.
add_test(NAME test_standard_chain
         COMMAND ${BASH_PROGRAM} ${CMAKE_CURRENT_SOURCE_DIR}/test_standard_chain.sh
                 $<TARGET_FILE:contimg>)
set_tests_properties(test_standard_chain PROPERTIES FIXTURES_REQUIRED postgres
                                                    ENVIRONMENT "${TEST_ENV}" LABELS mpi TIMEOUT 600)
# Publishing to the archive: paths refused, retries with backoff and the error kept, two
# publishers at once moving each file exactly once, a dead publisher's claim taken over.
add_test(NAME test_publish
         COMMAND ${BASH_PROGRAM} ${CMAKE_CURRENT_SOURCE_DIR}/test_publish.sh $<TARGET_FILE:contimg>)
set_tests_properties(test_publish PROPERTIES FIXTURES_REQUIRED postgres
                                             ENVIRONMENT "${TEST_ENV}" LABELS nompi TIMEOUT 300)
