-- certbind schema, version 3: the serving change history a data plane follows, so a
-- change to one of 100,000 bindings costs the data plane that change, not a re-read of
-- everything.
--
-- Binding changes need no table: every change to what a binding serves writes the row
-- as Associating or Dissociating at the changing revision, which the partial indexes
-- bindings_associating and bindings_dissociating already find by revision. Everything
-- else that changes what a listener serves (the listener itself, its load balancer's
-- address, its backends, and a served binding changed outside that path) is recorded
-- here by the triggers below, whatever code makes the change.
--
-- `seq` follows commit order because SQLite has one writer at a time. A store with
-- concurrent writers (PostgreSQL) needs an order that does too, such as the revision row
-- every serving change already locks.
CREATE TABLE listener_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    listener_id INTEGER NOT NULL
);
-- Changes up to this sequence number were pruned: a reader that saw less reads everything.
INSERT INTO meta (key, value) VALUES ('listener_changes_pruned', 0);

CREATE TRIGGER listener_created AFTER INSERT ON listeners BEGIN
    INSERT INTO listener_changes (listener_id) VALUES (NEW.id);
END;
CREATE TRIGGER listener_deleted AFTER DELETE ON listeners BEGIN
    INSERT INTO listener_changes (listener_id) VALUES (OLD.id);
END;
CREATE TRIGGER listener_moved AFTER UPDATE OF load_balancer_id, protocol, udp, port ON listeners BEGIN
    INSERT INTO listener_changes (listener_id) VALUES (NEW.id);
END;
CREATE TRIGGER load_balancer_readdressed AFTER UPDATE OF address ON load_balancers
WHEN OLD.address IS NOT NEW.address BEGIN
    INSERT INTO listener_changes (listener_id) SELECT id FROM listeners WHERE load_balancer_id = NEW.id;
END;
CREATE TRIGGER backend_added AFTER INSERT ON backends BEGIN
    INSERT INTO listener_changes (listener_id) VALUES (NEW.listener_id);
END;
CREATE TRIGGER backend_removed AFTER DELETE ON backends BEGIN
    INSERT INTO listener_changes (listener_id) VALUES (OLD.listener_id);
END;
CREATE TRIGGER backend_changed AFTER UPDATE ON backends BEGIN
    INSERT INTO listener_changes (listener_id) VALUES (OLD.listener_id);
    INSERT INTO listener_changes (listener_id) SELECT NEW.listener_id WHERE NEW.listener_id <> OLD.listener_id;
END;
-- Settling deletes Dissociating rows and turns Associating ones Associated at their own
-- revision: neither changes what is served, and neither fires these.
CREATE TRIGGER served_binding_deleted AFTER DELETE ON bindings
WHEN OLD.status <> 'Dissociating' BEGIN
    INSERT INTO listener_changes (listener_id) VALUES (OLD.listener_id);
END;
CREATE TRIGGER served_binding_inserted AFTER INSERT ON bindings
WHEN NEW.status = 'Associated' BEGIN
    INSERT INTO listener_changes (listener_id) VALUES (NEW.listener_id);
END;
CREATE TRIGGER served_binding_updated AFTER UPDATE ON bindings
WHEN NEW.status = 'Associated'
 AND NOT (OLD.status = 'Associating' AND OLD.role = NEW.role AND OLD.revision = NEW.revision) BEGIN
    INSERT INTO listener_changes (listener_id) VALUES (NEW.listener_id);
END;
