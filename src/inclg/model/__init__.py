"""The INCLG networks: multi-task generator, discriminator, their layers and weight I/O."""
