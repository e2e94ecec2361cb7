/**
 * Numbers from the virtio 1.2 specification (OASIS, "Virtual I/O Device
 * (VIRTIO) Version 1.2"): device status bits (2.1), reserved feature bits (6),
 * split virtqueue flags (2.7), the virtio-mmio version 2 register layout
 * (4.2.2) and device IDs (5).
 */

// ------------------------------------------------------------------ device status (2.1)

export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
/** Only with VIRTIO_F_SUSPEND, which Disco does not offer. */
export const STATUS_SUSPEND = 16;
export const STATUS_DEVICE_NEEDS_RESET = 64;
export const STATUS_FAILED = 128;
/** The bits a driver may set (without VIRTIO_F_SUSPEND). */
export const STATUS_DRIVER_BITS = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK | STATUS_FEATURES_OK | STATUS_FAILED;

// ------------------------------------------------------------------ feature bits (6)

export const F_INDIRECT_DESC = 28;
export const F_EVENT_IDX = 29;
export const F_VERSION_1 = 32;
export const F_ACCESS_PLATFORM = 33;
export const F_RING_PACKED = 34;
export const F_IN_ORDER = 35;
export const F_ORDER_PLATFORM = 36;
export const F_NOTIFICATION_DATA = 38;
export const F_RING_RESET = 40;

/** A feature bit as a 64-bit mask. */
export const feature = (bit: number): bigint => 1n << BigInt(bit);

/** The transport-level features every Disco device offers. */
export const TRANSPORT_FEATURES = feature(F_VERSION_1) | feature(F_INDIRECT_DESC) | feature(F_EVENT_IDX);

// ------------------------------------------------------------------ split virtqueues (2.7)

export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** Bytes of one descriptor (struct virtq_desc). */
export const DESC_SIZE = 16;
/** Bytes of one used ring element (struct virtq_used_elem). */
export const USED_ELEM_SIZE = 8;
/** The largest split queue size (2.7: the highest power of 2 that fits in 16 bits). */
export const MAX_QUEUE_SIZE = 32768;
/** Alignment of the descriptor table, available ring and used ring (2.7). */
export const DESC_ALIGN = 16;
export const AVAIL_ALIGN = 2;
export const USED_ALIGN = 4;

// ------------------------------------------------------------------ virtio-mmio (4.2.2)

export const MMIO_MAGIC = 0x74726976; // "virt"
export const MMIO_VERSION = 2;

export const REG_MAGIC_VALUE = 0x000;
export const REG_VERSION = 0x004;
export const REG_DEVICE_ID = 0x008;
export const REG_VENDOR_ID = 0x00c;
export const REG_DEVICE_FEATURES = 0x010;
export const REG_DEVICE_FEATURES_SEL = 0x014;
export const REG_DRIVER_FEATURES = 0x020;
export const REG_DRIVER_FEATURES_SEL = 0x024;
export const REG_QUEUE_SEL = 0x030;
export const REG_QUEUE_NUM_MAX = 0x034;
export const REG_QUEUE_NUM = 0x038;
export const REG_QUEUE_READY = 0x044;
export const REG_QUEUE_NOTIFY = 0x050;
export const REG_INTERRUPT_STATUS = 0x060;
export const REG_INTERRUPT_ACK = 0x064;
export const REG_STATUS = 0x070;
export const REG_QUEUE_DESC_LOW = 0x080;
export const REG_QUEUE_DESC_HIGH = 0x084;
export const REG_QUEUE_DRIVER_LOW = 0x090;
export const REG_QUEUE_DRIVER_HIGH = 0x094;
export const REG_QUEUE_DEVICE_LOW = 0x0a0;
export const REG_QUEUE_DEVICE_HIGH = 0x0a4;
export const REG_SHM_SEL = 0x0ac;
export const REG_SHM_LEN_LOW = 0x0b0;
export const REG_SHM_LEN_HIGH = 0x0b4;
export const REG_SHM_BASE_LOW = 0x0b8;
export const REG_SHM_BASE_HIGH = 0x0bc;
export const REG_QUEUE_RESET = 0x0c0;
export const REG_CONFIG_GENERATION = 0x0fc;
export const REG_CONFIG = 0x100;

/** InterruptStatus / InterruptACK bits. */
export const INT_USED_BUFFER = 1;
export const INT_CONFIG_CHANGE = 2;

/** "DSCO", as the SBI implementation ID (the MMIO vendor ID has no registry). */
export const DISCO_VENDOR_ID = 0x4453434f;

// ------------------------------------------------------------------ device IDs (5)

export const DEVICE_ID_NET = 1;
export const DEVICE_ID_BLOCK = 2;
export const DEVICE_ID_CONSOLE = 3;
export const DEVICE_ID_ENTROPY = 4;
export const DEVICE_ID_BALLOON = 5;
export const DEVICE_ID_INPUT = 18;
export const DEVICE_ID_VSOCK = 19;
