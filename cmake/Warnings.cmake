# The house warning set (../shared/STYLE.md §10). em_target_warnings(target) applies it;
# parsers/ additionally gets -Wconversion through em_target_strict_warnings().
set(EM_WARNINGS
    -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
    -Wpointer-arith -Wcast-qual -Wundef)

function(em_target_warnings target)
    target_compile_options(${target} PRIVATE ${EM_WARNINGS})
    if(EM_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()

function(em_target_strict_warnings target)
    em_target_warnings(${target})
    target_compile_options(${target} PRIVATE -Wconversion -Wsign-conversion)
endfunction()
