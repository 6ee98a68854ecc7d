# Cross-compiling em-agent for 64-bit Windows with Debian's mingw-w64 (gcc, win32 thread
# model, msvcrt). The dependencies come from a static sysroot that
# scripts/build-windows-deps.sh builds from Debian's source packages; pass its path as
# -DEM_MINGW_SYSROOT=... (scripts/build-windows.sh does all of this).
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(EM_MINGW_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${EM_MINGW_TRIPLE}-gcc)
set(CMAKE_RC_COMPILER ${EM_MINGW_TRIPLE}-windres)

set(EM_MINGW_SYSROOT "$ENV{EM_MINGW_SYSROOT}" CACHE PATH "The static sysroot of build-windows-deps.sh")
if(NOT EM_MINGW_SYSROOT)
    message(FATAL_ERROR "EM_MINGW_SYSROOT is not set: run scripts/build-windows-deps.sh, which prints it")
endif()
# Try-compiles see the same variables.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES EM_MINGW_SYSROOT)

set(CMAKE_FIND_ROOT_PATH ${EM_MINGW_SYSROOT} /usr/${EM_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_PREFIX_PATH ${EM_MINGW_SYSROOT})

# pkg-config reads only the sysroot's .pc files.
set(ENV{PKG_CONFIG_LIBDIR} "${EM_MINGW_SYSROOT}/lib/pkgconfig:${EM_MINGW_SYSROOT}/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# One static .exe that imports only system DLLs.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

# ctest runs the test programs through wine.
find_program(EM_WINE NAMES wine wine64)
if(EM_WINE)
    set(CMAKE_CROSSCOMPILING_EMULATOR ${EM_WINE})
endif()
