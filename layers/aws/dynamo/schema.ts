/**
 * The single table (DESIGN.md §6). Imported by the CDK stateful stack and by the local stack's
 * table creation, so both build the same table. No SDK imports here.
 *
 * Access patterns (entity module → key):
 *   token by hash              PK=TOKEN#<sha256>            SK=META
 *   tokens, all                GSI3PK=TOKENS                GSI3SK=<token id>
 *   node by id                 PK=NODE#<uuid>               SK=META   (allocations embedded)
 *   node by name / host id     PK=NODENAME#<name> | HOSTID#<n>  SK=META → node id (uniqueness)
 *   nodes, all                 GSI3PK=NODES                 GSI3SK=<uuid>
 *   lease with children        PK=LEASE#<uuid>              SK=META | RES#<id> | EVENT#<id>
 *   leases of a project        GSI1PK=LEASES#<project>      GSI1SK=<lease id>#<SK>
 *   leases, all                GSI3PK=LEASES                GSI3SK=<lease id>#<SK>
 *   due events (UNDONE only)   GSI2PK=EVENTS#UNDONE         GSI2SK=<time>#<order>#<lease>#<event>
 *   agent job                  PK=JOB#<uuid>                SK=META
 *   agents seen, per site      PK=AGENTS#<site>             SK=AGENT#<token id>  (ttl one day)
 *   jobs offered to a site     GSI2PK=JOBS#<site>           GSI2SK=<available at>#<job id> (sparse)
 *   resource property          PK=PROPERTY#<resource type>  SK=<name>
 *   idempotency record         PK=IDEMP#<scope>#<key>       SK=META   (ttl)
 *   counters                   PK=COUNTER#<name>            SK=META
 *   commissaire cluster        PK=COMM#CLUSTER#<name>       SK=META   (hostset + version, operation lock)
 *   its last operations        PK=COMM#CLUSTER#<name>       SK=OP#deploy | OP#upgrade | OP#restart
 *   commissaire host           PK=COMM#HOST#<address>       SK=META   (sealed SSH key, node id, cluster)
 *   commissaire network / CM   PK=COMM#NETWORK#<name> | COMM#CM#<name>  SK=META
 *   commissaire lists          GSI3PK=COMM#CLUSTERS | COMM#HOSTS | COMM#NETWORKS | COMM#CONTAINERMANAGERS
 *                              GSI3SK=<name or address>   (GET /hosts: a window after an address; hosts of a cluster: its hostset + BatchGet)
 *   ironic port                PK=BMPORT#<uuid>             SK=META   (version for CAS)
 *   its MAC (uniqueness)       PK=BMPORTMAC#<mac>           SK=META → port id
 *   ports of a node            GSI1PK=BMPORTS#NODE#<node>   GSI1SK=<port uuid>
 *   ports, all                 GSI3PK=BMPORTS               GSI3SK=<port uuid>
 *   node by address            (no key yet: the node list filtered; see DynamoNodeRepository.getByAddress)
 *   drydock task               PK=DDTASK#<id>               SK=META   (whole record, version for CAS)
 *   its status messages        PK=DDTASK#<id>               SK=MSG#<monotonic ULID>   (insertion order)
 *   its build data             PK=DDTASK#<id>               SK=BUILD#<collected>#<node>#<ULID>
 *   build data of a node       GSI1PK=DD#BUILD#<node>       GSI1SK=<collected>#<task id>#<ULID>
 *   drydock tasks, all         GSI3PK=DD#TASKS              GSI3SK=<created ISO>#<task id>   (GET /tasks of the site: one window)
 *   drydock tasks of a project GSI1PK=DD#TASKS#<project>    GSI1SK=<created ISO>#<task id>   (GET /tasks of a project's token)
 *   designs of a project       GSI1PK=DD#DESIGNS#<project>  GSI1SK=<created ISO>#<design id>
 *   drydock site task queue    GSI2PK=DD#QUEUE#<site>       GSI2SK=<created ISO>#<task id>  (sparse: queued or running top-level tasks)
 *   drydock site task slots    PK=DDSITE#<site>             SK=SLOTS  (string set `holders`)
 *   drydock site config        PK=DDSITE#<site>             SK=CONFIG (what prepare_site recorded)
 *   drydock design / parts     PK=DDDESIGN#<id>             SK=META | PART#<part id>
 *   drydock designs, all       GSI3PK=DD#DESIGNS            GSI3SK=<created ISO>#<design id>
 *   boot-action context        PK=DDBANODE#<node>           SK=META   (one per node, replaced per deploy)
 *   boot-action row            PK=DDBA#<action ULID>        SK=META
 */
export const TABLE_KEYS = { partitionKey: 'PK', sortKey: 'SK' } as const;

export const TABLE_INDEXES = [
  { indexName: 'GSI1', partitionKey: 'GSI1PK', sortKey: 'GSI1SK' },
  { indexName: 'GSI2', partitionKey: 'GSI2PK', sortKey: 'GSI2SK' },
  { indexName: 'GSI3', partitionKey: 'GSI3PK', sortKey: 'GSI3SK' },
] as const;

/** Epoch seconds; DynamoDB deletes expired items (idempotency records, expired tokens). */
export const TTL_ATTRIBUTE = 'ttl';

export const DEFAULT_TABLE_NAME = 'slipway';
