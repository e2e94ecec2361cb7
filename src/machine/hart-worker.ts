/** A hart of the bare-metal machine on its own worker thread. */
import { parentPort, workerData } from 'node:worker_threads';
import { Clock } from '../cpu/clock.js';
import { Hart } from '../cpu/hart.js';
import { accelerate } from '../jit/index.js';
import { MachineMemory } from '../memory/machine-memory.js';
import { Pmap } from '../memory/pmap.js';
import { bareMetalBus, type HartWorkerData } from './baremetal.js';
import { runHart } from './hart-loop.js';

const d = workerData as HartWorkerData;
const mem = MachineMemory.attach(d.mem);
const pmap = Pmap.attach(mem, d.pmap);
const clock = Clock.attach(d.clock);
const hart = new Hart({ mem, pmap, clock, hartId: d.index, block: d.blocks[d.index]!, tlb: d.tlbs[d.index]!, tohost: d.tohost });
accelerate(hart, d.jit);
const bus = bareMetalBus(mem, clock, d.blocks);
const stop = new Int32Array(d.stop);
const outcome = await runHart(hart, bus, { maxInstructions: d.maxInstructions, stopped: () => Atomics.load(stop, 0) !== 0 });
parentPort?.postMessage(outcome);
