# Writes OUT, a C file holding the page's files (backend/web) as byte arrays, so that
# em-backend serve carries its page inside the binary: no files to install, no network.
#   cmake -DOUT=... -DDIR=... -P embed.cmake
set(files
    "index.html|text/html@ charset=utf-8"
    "app.js|text/javascript@ charset=utf-8"
    "app.css|text/css@ charset=utf-8"
    "openapi.json|application/json")
# ("@" stands for ";", which would split a CMake list)
set(body "/* Generated from backend/web by backend/web/embed.cmake; do not edit. */\n")
string(APPEND body "#include \"serve.h\"\n\n")
set(table "")
foreach(entry IN LISTS files)
    string(REPLACE "|" ";" parts "${entry}")
    list(GET parts 0 name)
    list(GET parts 1 type)
    string(REPLACE "@" ";" type "${type}")
    file(READ ${DIR}/${name} hex HEX)
    string(LENGTH "${hex}" hexlen)
    math(EXPR len "${hexlen} / 2")
    string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
    string(MAKE_C_IDENTIFIER ${name} id)
    string(APPEND body "static const unsigned char w_${id}[] = {${hex}0x00};\n")
    string(APPEND table "    {\"${name}\", \"${type}\", w_${id}, ${len}},\n")
endforeach()
string(APPEND body "\nconst struct web_file serve_web_files[] = {\n${table}    {0, 0, 0, 0}};\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
