# The distributed imager: against the one-rank gridder and a direct Fourier transform,
# bad input, and the same bits on 1, 2 and 4 ranks.
add_executable(test_imager test_imager.c)
target_link_libraries(test_imager PRIVATE contimg_testutil)
add_test(NAME test_imager COMMAND ${BASH_PROGRAM} ${CMAKE_CURRENT_SOURCE_DIR}/test_imager.sh
                                  $<TARGET_FILE:test_imager>)
set_tests_properties(test_imager PROPERTIES LABELS mpi TIMEOUT 300)

# `contimg image` end to end: sources found by astropy where they are, with their fluxes;
# all six FITS images identical on 1, 2 and 4 ranks; noise against the radiometer
# equation; bad input refused with nothing left behind.
add_test(NAME test_image COMMAND ${BASH_PROGRAM} ${CMAKE_CURRENT_SOURCE_DIR}/test_image.sh
                                 $<TARGET_FILE:contimg>)
set_tests_properties(test_image PROPERTIES LABELS mpi TIMEOUT 1200)
