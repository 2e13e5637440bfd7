//! ZBot boot policy: boot counting, trials, rollback and health checks over the U-Boot
//! environment. See `docs/boot-contract.md`.
