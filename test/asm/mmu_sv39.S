# MMU, Sv39: 4 KiB, 2 MiB and 1 GiB pages; invalid PTEs (V=0, W without R,
# non-leaf at level 0, reserved bits), misaligned superpages, access faults
# after translation and during the walk, fetch page fault before illegal
# instruction, MXR, hardware A/D updates (checked in the PTEs), sfence.vma
# after PTE changes, non-canonical addresses, MPRV with MPP = S/U/M, U-mode
# (at a U alias of the program), S cannot execute U pages, a page fault
# delegated to S, satp WARL.  Permission combinations: mmu_perm.S.  The
# tables and the test body are in mmu.h (shared with mmu_sv48.S).
#include "common.h"

#define CANONICAL_VA    0xffffffc000000000   /* upper half: LVL2[256] */
#define NONCANONICAL_VA 0x0000004000000000   /* bit 38 = 0, bit 39 = 1 */

#include "mmu.h"

.macro MMU_EXTRA_S_TESTS
.endm

#include "mmu_body.h"
