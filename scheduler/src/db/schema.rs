//! Diesel's view of the tables (the same on SQLite and MySQL; see `migrations/`).

diesel::table! {
    hosts (id) {
        id -> BigInt,
        hostname -> Text,
        status -> Text,
        locked -> Bool,
        lock_reason -> Nullable<Text>,
        created_on -> BigInt,
        dirty -> Bool,
        locked_by -> Nullable<Text>,
    }
}

diesel::table! {
    labels (id) {
        id -> BigInt,
        name -> Text,
    }
}

diesel::table! {
    host_labels (host_id, label_id) {
        host_id -> BigInt,
        label_id -> BigInt,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        name -> Text,
        owner -> Text,
        priority -> Integer,
        control_file -> Text,
        created_on -> BigInt,
        drone_set_id -> Nullable<BigInt>,
        synch_count -> Integer,
        tasks -> Integer,
        notify -> Nullable<Text>,
        results_place -> Nullable<Text>,
        results_place_on -> Nullable<BigInt>,
    }
}

diesel::table! {
    drone_sets (id) {
        id -> BigInt,
        name -> Text,
    }
}

diesel::table! {
    drone_set_drones (drone_set_id, drone) {
        drone_set_id -> BigInt,
        drone -> Text,
    }
}

diesel::table! {
    host_queue_entries (id) {
        id -> BigInt,
        job_id -> BigInt,
        host_id -> Nullable<BigInt>,
        meta_label_id -> Nullable<BigInt>,
        status -> Text,
        priority -> Integer,
        execution_subdir -> Text,
        drone -> Nullable<Text>,
        attempt -> Integer,
        exit_code -> Nullable<Integer>,
        failure_reason -> Nullable<Text>,
        created_on -> BigInt,
        started_on -> Nullable<BigInt>,
        finished_on -> Nullable<BigInt>,
        aborted_by -> Nullable<Text>,
        aborted_on -> Nullable<BigInt>,
        abort_reason -> Nullable<Text>,
        queue_deadline -> Nullable<BigInt>,
        max_runtime_us -> Nullable<BigInt>,
        failure_kind -> Nullable<Text>,
        infra_retries -> Integer,
        avoid_drone -> Nullable<Text>,
        dispatched_on -> Nullable<BigInt>,
        group_lead_id -> Nullable<BigInt>,
        manifest_files -> Nullable<BigInt>,
        manifest_bytes -> Nullable<BigInt>,
        parse_error -> Nullable<Text>,
        tests_dropped -> Nullable<BigInt>,
    }
}

diesel::table! {
    drones (name) {
        name -> Text,
        enabled -> Bool,
        capacity -> Integer,
        last_heartbeat -> Nullable<BigInt>,
        capacity_override -> Nullable<Integer>,
        results_url -> Nullable<Text>,
        stopping -> Bool,
        free_mb -> Nullable<BigInt>,
        low_disk -> Bool,
    }
}

diesel::table! {
    job_dependencies (job_id, label_id) {
        job_id -> BigInt,
        label_id -> BigInt,
    }
}

diesel::table! {
    entry_history (id) {
        id -> BigInt,
        entry_id -> BigInt,
        attempt -> Integer,
        drone -> Nullable<Text>,
        event -> Text,
        detail -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        name -> Text,
        admin -> Bool,
        created -> BigInt,
    }
}

diesel::table! {
    tests (id) {
        id -> BigInt,
        job_id -> BigInt,
        entry_id -> BigInt,
        attempt -> Integer,
        host_id -> Nullable<BigInt>,
        name -> Text,
        subdir -> Nullable<Text>,
        status -> Text,
        reason -> Nullable<Text>,
        started -> Nullable<BigInt>,
        finished -> Nullable<BigInt>,
    }
}

diesel::table! {
    acl_groups (id) {
        id -> BigInt,
        name -> Text,
        description -> Nullable<Text>,
    }
}

diesel::table! {
    test_attributes (test_id, name) {
        test_id -> BigInt,
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    acl_group_users (acl_group_id, user_id) {
        acl_group_id -> BigInt,
        user_id -> BigInt,
    }
}

diesel::table! {
    test_iterations (test_id, iteration, name) {
        test_id -> BigInt,
        iteration -> Integer,
        name -> Text,
        value -> Nullable<Text>,
        perf -> Nullable<Double>,
    }
}

diesel::table! {
    acl_group_hosts (acl_group_id, host_id) {
        acl_group_id -> BigInt,
        host_id -> BigInt,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        hash -> Text,
        created -> BigInt,
        revoked -> Nullable<BigInt>,
    }
}

diesel::joinable!(api_tokens -> users (user_id));

diesel::table! {
    sessions (id) {
        id -> BigInt,
        hash -> Text,
        user_id -> BigInt,
        token_id -> BigInt,
        csrf -> Text,
        created -> BigInt,
        expires -> BigInt,
    }
}

diesel::table! {
    test_result_parts (entry_id, attempt, part) {
        entry_id -> BigInt,
        attempt -> Integer,
        part -> Integer,
        body -> Text,
    }
}

diesel::joinable!(host_labels -> hosts (host_id));
diesel::joinable!(host_labels -> labels (label_id));
diesel::joinable!(host_queue_entries -> jobs (job_id));
diesel::joinable!(host_queue_entries -> hosts (host_id));
diesel::joinable!(host_queue_entries -> labels (meta_label_id));
diesel::joinable!(job_dependencies -> labels (label_id));
diesel::joinable!(jobs -> drone_sets (drone_set_id));

diesel::allow_tables_to_appear_in_same_query!(
    hosts,
    labels,
    host_labels,
    jobs,
    host_queue_entries,
    drones,
    job_dependencies,
    entry_history,
    drone_sets,
    drone_set_drones,
    users,
    acl_groups,
    acl_group_users,
    acl_group_hosts,
    api_tokens,
    sessions,
    tests,
    test_attributes,
    test_iterations,
    test_result_parts
);
