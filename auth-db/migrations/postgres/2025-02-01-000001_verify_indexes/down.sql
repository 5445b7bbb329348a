DROP INDEX teams_id_c_idx;
DROP INDEX users_id_c_idx;
