# Mosaics: fluxes, positions and the noise map against a known sky; the same bits on
# 1, 3 and 4 ranks and any tiling; bad input refused with nothing written.
add_executable(test_mosaic test_mosaic.c)
target_link_libraries(test_mosaic PRIVATE contimg_testutil)
add_test(NAME test_mosaic COMMAND ${BASH_PROGRAM} ${CMAKE_CURRENT_SOURCE_DIR}/test_mosaic.sh
                                  $<TARGET_FILE:test_mosaic>)
set_tests_properties(test_mosaic PROPERTIES LABELS mpi TIMEOUT 300)
