/* The EPU layout rules (epu_layout.h), from paths alone: kinds, session directories and
 * square ids, worked out by hand from DESIGN §3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "epu_layout.h"

struct want {
    const char *rel;
    enum epu_kind kind;
    bool unplaced;
    const char *session; /* NULL: none */
    int64_t gridsquare_id;
};

static const struct want cases[] = {
    {"S/EpuSession.dm", EPU_KIND_SESSION, false, "S", 0},
    {"EpuSession.dm", EPU_KIND_SESSION, false, ".", 0},
    {"visit/S1/Metadata/GridSquare_1234.dm", EPU_KIND_GRIDSQUARE_METADATA, false, "visit/S1", 1234},
    {"Metadata/GridSquare_7.dm", EPU_KIND_GRIDSQUARE_METADATA, false, ".", 7},
    {"S/Other/GridSquare_7.dm", EPU_KIND_GRIDSQUARE_METADATA, true, NULL, 0},
    {"S/Images-Disc1/GridSquare_55/GridSquare_20240405_113647.xml", EPU_KIND_GRIDSQUARE_IMAGE,
     false, "S", 55},
    {"S/Images-Disc12/GridSquare_55/FoilHoles/FoilHole_9_20240405_113647.xml",
     EPU_KIND_FOILHOLE_IMAGE, false, "S", 55},
    {"a/b/S/Images-Disc1/GridSquare_55/Data/FoilHole_9_Data_1_2_20240405_113647.xml",
     EPU_KIND_MICROGRAPH, false, "a/b/S", 55},
    {"Images-Disc1/GridSquare_3/Data/FoilHole_9_Data_1_2_20240405_113647.xml", EPU_KIND_MICROGRAPH,
     false, ".", 3},
    /* An image outside Images-Disc<N>, or with no GridSquare_<gs> directory: unplaced. */
    {"S/Images/GridSquare_55/GridSquare_20240405_113647.xml", EPU_KIND_GRIDSQUARE_IMAGE, true, NULL,
     0},
    {"S/Images-Disc1/FoilHoles/FoilHole_9_20240405_113647.xml", EPU_KIND_FOILHOLE_IMAGE, true, NULL,
     0},
    {"S/Images-DiscX/GridSquare_5/GridSquare_20240405_113647.xml", EPU_KIND_GRIDSQUARE_IMAGE, true,
     NULL, 0},
    {"atlas/Supervisor_x_Atlas/Sample1/Atlas/Atlas.dm", EPU_KIND_ATLAS, false, NULL, 0},
    {"S/Images-Disc1/GridSquare_55/Data/FoilHole_9_Data_1_2_20240405_113647.jpg", EPU_KIND_NONE,
     false, NULL, 0},
    {"S/notes.txt", EPU_KIND_NONE, false, NULL, 0},
};

static void test_layout__places_by_hand(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct want *w = &cases[i];
        struct epu_place pl;
        epu_layout_place(w->rel, &pl);
        print_message("%s\n", w->rel);
        assert_int_equal(pl.kind, w->kind);
        assert_int_equal(pl.unplaced, w->unplaced);
        assert_int_equal(pl.has_session, w->session != NULL);
        if (w->session) {
            assert_true(epu_layout_in_session(w->rel, &pl, w->session));
            assert_false(epu_layout_in_session(w->rel, &pl, "elsewhere"));
            assert_int_equal(pl.gridsquare_id, w->gridsquare_id);
        }
    }
}

static void test_layout__session_markers(void **state)
{
    (void)state;
    bool md;
    assert_true(epu_layout_session_marker("Metadata", &md));
    assert_true(md);
    assert_true(epu_layout_session_marker("Images-Disc1", &md));
    assert_false(md);
    assert_true(epu_layout_session_marker("Images-Disc10", &md));
    assert_false(epu_layout_session_marker("Images-Disc", &md));
    assert_false(epu_layout_session_marker("Images-Disc1x", &md));
    assert_false(epu_layout_session_marker("metadata", &md));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout__places_by_hand),
        cmocka_unit_test(test_layout__session_markers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
