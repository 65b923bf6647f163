# The distributed imager: against the one-rank gridder and a direct Fourier transform,
# bad input, and the same bits on 1, 2 and 4 ranks.
add_executable(test_imager test_imager.c)
target_link_libraries(test_imager PRIVATE contimg_testutil)
add_test(NAME test_imager COMMAND ${BASH_PROGRAM} ${CMAKE_CURRENT_SOURCE_DIR}/test_imager.sh
                                  $<TARGET_FILE:test_imager>)
set_tests_properties(test_imager PROPERTIES LABELS mpi TIMEOUT 300)
