DROP INDEX hqe_meta_queue;
