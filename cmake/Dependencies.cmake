# Every dependency comes from Debian's packages (see scripts/setup.sh for the apt names).
# libuv and cmocka only ship pkg-config files on Debian 12; the rest have CMake support.
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBUV REQUIRED IMPORTED_TARGET libuv>=1.44)
find_package(LibXml2 REQUIRED)
find_package(cJSON REQUIRED)
if(NOT TARGET cjson)
    message(FATAL_ERROR "cJSON's CMake config did not define the 'cjson' target")
endif()
if(EM_TESTS)
    pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)
endif()
# The bus and the store (DESIGN §7-8): rabbitmq-c ships a CMake config; SQLite and libpq
# have CMake's find modules.
find_package(rabbitmq-c REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(PostgreSQL REQUIRED)
