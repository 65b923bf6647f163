# Stokes I imaging rows from a UVH5 file, re-phased to a fixed ICRS centre: every row
# against the point-source model, split blt ranges bit for bit, flags, NaNs, all flagged.
add_executable(test_visset test_visset.c)
target_link_libraries(test_visset PRIVATE contimg_testutil)
add_test(NAME test_visset COMMAND test_visset)
set_tests_properties(test_visset PROPERTIES LABELS nompi)
