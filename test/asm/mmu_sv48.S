# MMU, Sv48: the tests of mmu_sv39.S (see mmu.h) with a four-level walk,
# plus a 512 GiB page, a misaligned 512 GiB page, the Sv48 upper half and an
# address that is canonical in Sv48 but not in Sv39.
#include "common.h"

#define MMU_SV48
#define CANONICAL_VA    0x0000004000000000   /* Sv48: VPN[3] = 0, VPN[2] = 256 */
#define NONCANONICAL_VA 0x0000800000000000   /* bit 47 = 1, bits 63:48 = 0 */

#include "mmu.h"

.macro MMU_EXTRA_S_TESTS
    /* a 512 GiB page: VA 0x8000000000 -> physical 0 */
    SET_TEST(45)
    la a1, mmu_marker
    li a2, 0x8000000000
    add a2, a2, a1
    ld a0, 0(a2)
    CHECK(a0, 0x0123456789abcdef)
    /* a misaligned 512 GiB page */
    TEST_LOAD_FAULT(46, 0x10000000000 + 0x80000000, CAUSE_LOAD_PAGE_FAULT)
    /* the upper half: 0xffff800000000000 + 2 GiB -> the identity gigapage */
    SET_TEST(47)
    la a1, mmu_marker
    li a2, 0xffff800000000000
    add a2, a2, a1
    ld a0, 0(a2)
    CHECK(a0, 0x0123456789abcdef)
    /* canonical, but not mapped (VPN[3] = 511) */
    TEST_LOAD_FAULT(48, 0xffffffc000000000, CAUSE_LOAD_PAGE_FAULT)
.endm

#include "mmu_body.h"
