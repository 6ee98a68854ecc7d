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
if(WIN32)
    # The mingw sysroot of scripts/build-windows-deps.sh: static libraries only.
    # libxml2's .pc says LIBXML_STATIC but FindLibXml2 does not pass it on.
    set_property(TARGET LibXml2::LibXml2 APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS LIBXML_STATIC)
    # rabbitmq-c's static target carries no include directory and wants AMQP_STATIC.
    find_path(EM_AMQP_INCLUDE amqp.h REQUIRED)
    find_library(EM_AMQP_LIBRARY NAMES librabbitmq.4 rabbitmq.4 librabbitmq rabbitmq REQUIRED)
    add_library(rabbitmq::rabbitmq INTERFACE IMPORTED)
    set_target_properties(rabbitmq::rabbitmq PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES ${EM_AMQP_INCLUDE}
        INTERFACE_LINK_LIBRARIES "${EM_AMQP_LIBRARY};ws2_32"
        INTERFACE_COMPILE_DEFINITIONS AMQP_STATIC)
    if(NOT EXISTS ${EM_AMQP_INCLUDE}/rabbitmq-c/ssl_socket.h AND NOT EXISTS ${EM_AMQP_INCLUDE}/amqp_ssl_socket.h)
        set(EM_NO_TLS ON)
    else()
        # rabbitmq-c built with OpenSSL (EM_WIN_TLS=1): its static libraries, and crypt32
        # for the Windows certificate store that amqps:// trusts without --amqp-ca;
        # rabbitmq-c's OpenSSL glue locks with pthread mutexes (mingw's static winpthread).
        find_package(OpenSSL REQUIRED)
        set_property(TARGET rabbitmq::rabbitmq APPEND PROPERTY INTERFACE_LINK_LIBRARIES
            OpenSSL::SSL OpenSSL::Crypto crypt32 ws2_32 pthread)
    endif()
else()
    find_package(rabbitmq-c REQUIRED)
endif()
if(EM_BACKEND)
    find_package(CURL REQUIRED) # the loaders' transfers (issue 15)
    find_package(SQLite3 REQUIRED)
    find_package(PostgreSQL REQUIRED)
    pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd) # serve (issue 16)
    find_package(Threads REQUIRED)
endif()
