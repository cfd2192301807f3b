//! Engine tests over readings held in memory.
