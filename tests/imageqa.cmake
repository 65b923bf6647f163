# Included by CMakeLists.txt: the primary beam and per-image QA figures (issue 4).

# The wideband primary beam's radial table against direct evaluation, the Airy FWHM, the
# pblimit mask, a weighted wideband beam by hand, bad input.
add_executable(test_beam test_beam.c)
target_link_libraries(test_beam PRIVATE contimg_testutil)
add_test(NAME test_beam COMMAND test_beam)
set_tests_properties(test_beam PROPERTIES LABELS nompi TIMEOUT 300)

# Image QA: the robust rms of Gaussian noise with and without sources, peak and dynamic range,
# blanked pixels, medians of even counts, a 4800 x 4800 image's time, bad input.
add_executable(test_imageqa test_imageqa.c)
target_link_libraries(test_imageqa PRIVATE contimg_testutil)
add_test(NAME test_imageqa COMMAND test_imageqa)
set_tests_properties(test_imageqa PROPERTIES LABELS nompi TIMEOUT 300)
