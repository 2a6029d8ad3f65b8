"""Reading and writing files: `images` (the one reader of photos and masks, and the encoder of
every image INCLG writes) and `files` (atomic writes, sha256)."""
