# Writes OUT, a C file with each template of tools/templates as a NUL-terminated byte
# array, so em-synth carries its templates inside the binary.
#   cmake -DOUT=... -DDIR=... -P embed.cmake
set(names session.dm atlas.dm gridsquare.dm gridsquare.xml foilhole.xml micrograph.xml)
set(body "/* Generated from tools/templates by tools/embed.cmake; do not edit. */\n")
string(APPEND body "#include \"synth.h\"\n\n")
set(table "")
foreach(name IN LISTS names)
    file(READ ${DIR}/${name} hex HEX)
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
    string(MAKE_C_IDENTIFIER ${name} id)
    string(APPEND body "static const char t_${id}[] = {${hex}0x00};\n")
    string(APPEND table "    {\"${name}\", t_${id}},\n")
endforeach()
string(APPEND body "\nconst struct synth_builtin synth_builtins[] = {\n${table}    {0, 0}};\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
