DROP INDEX datasets_team_id_c_idx;
DROP INDEX datasets_owner_id_c_idx;
