// The compression codecs a backup file can have; a basic, since the config validates
// BACKUP_COMPRESSION against it and every wing above names files and programs by it.

export const CODECS = ["bzip2", "zstd", "gzip", "none"] as const;
export type Codec = (typeof CODECS)[number];
