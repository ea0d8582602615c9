DROP INDEX hqe_meta_queue ON host_queue_entries;
