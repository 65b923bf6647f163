# Turns a text file into a C source holding it as a NUL-terminated array, so the binary
# carries its status page and `contimg serve` needs no install tree.
# Invoked as: cmake -DIN=... -DOUT=... -DNAME=... -P embed.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}.tmp"
     "/* Generated from ${IN} by src/api/embed.cmake; do not edit. */\n"
     "extern const char ${NAME}[];\nconst char ${NAME}[] = {${bytes}0x00};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
