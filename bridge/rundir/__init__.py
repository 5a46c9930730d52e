"""Every file of the run directory, each with one owning module and a typed schema."""
