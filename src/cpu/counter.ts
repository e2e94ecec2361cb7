/**
 * The first value of a counter that can pass 2^31 (instructions executed, page
 * walks, translator statistics), stored before its real first value of 0.
 *
 * Why: V8 gives an object's field the representation of the first value stored
 * in it. A 0 makes the field a small integer, and the first value past 2^31 then
 * moves every object of the class to a new shape and deoptimises all code
 * compiled against the old one. A Linux boot passes 2^31 instructions near its
 * end: some 65 functions of the hart and the translator were deoptimised at once
 * and ran as baseline code into the workload that followed. -0 is not a small
 * integer, so the field is a double from its first store, and a double field
 * keeps the 0 stored next as a double (docs/decisions.md, "Counters are doubles").
 */
export const DOUBLE_FIELD = -0;
