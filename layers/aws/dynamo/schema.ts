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
 *   leases by name (not unique) GSI7PK=LEASENAME#<name>     GSI7SK=<project>#<lease id>  (META rows; GET /v1/leases?name=)
 *   due events                 GSI2PK=EVENTS#UNDONE         GSI2SK=<time>#<order>#<lease>#<event>  (META rows: a lease's next UNDONE event)
 *   running events             GSI2PK=EVENTS#IN_PROGRESS    GSI2SK=<started>#<lease>#<event>       (META rows, instead, while one runs)
 *   agent job                  PK=JOB#<uuid>                SK=META
 *   agents seen, per site      PK=AGENTS#<site>             SK=AGENT#<token id>  (ttl 30 days)
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
 *   ports by creation          GSI6PK=BMPORTS               GSI6SK=<created ISO>#<port uuid>  (GET /v1/ports, default sort)
 *   node by address            PK=NODEADDR#<address>        SK=<node uuid> → node id (first by id wins; ≤ 8 per node)
 *   hosts (enrolled), by id    GSI4PK=HOSTS                 GSI4SK=<uuid>   (lease allocation: from a random id, wrapping)
 *   hosts with a capability    PK=HOSTCAP#<key>=<value>     SK=<node uuid>  (equality filters; ≤ 32 per host)
 *   nodes not fully indexed    GSI5PK=NODES#UNINDEXED       GSI5SK=<uuid>   (over those bounds, or granted twice: lookups read these too)
 *   nodes by creation          GSI6PK=NODES                 GSI6SK=<created ISO>#<uuid>  (GET /v1/nodes, default sort)
 *   … by provision state       GSI7PK=NODES#PS#<state>      GSI7SK=<created ISO>#<uuid>  (?provision_state=)
 *   … by driver                GSI8PK=NODES#DRIVER#<driver> GSI8SK=<created ISO>#<uuid>  (?driver=; nodes with a BMC)
 *   … by resource class        GSI9PK=NODES#RC#<class>      GSI9SK=<created ISO>#<uuid>  (?resource_class=)
 *   … granted to a project     GSI10PK=NODES#LESSEE#<project> GSI10SK=<created ISO>#<uuid> (a lessee's list; ?lessee=)
 *   drydock task               PK=DDTASK#<id>               SK=META   (whole record, version for CAS)
 *   its status messages        PK=DDTASK#<id>               SK=MSG#<monotonic ULID>   (insertion order)
 *   its build data             PK=DDTASK#<id>               SK=BUILD#<collected>#<node>#<ULID>
 *   build data of a node       GSI1PK=DD#BUILD#<node>       GSI1SK=<collected>#<task id>#<ULID>
 *   drydock tasks, all         GSI3PK=DD#TASKS              GSI3SK=<created ISO>#<task id>   (GET /tasks of the site: one window)
 *   drydock tasks of a project GSI1PK=DD#TASKS#<project>    GSI1SK=<created ISO>#<task id>   (GET /tasks of a project's token)
 *   drydock site task queue    GSI2PK=DD#QUEUE#<site>       GSI2SK=<created ISO>#<task id>  (sparse: queued or running top-level tasks)
 *   drydock site task slots    PK=DDSITE#<site>             SK=SLOTS  (string set `holders`)
 *   drydock site config        PK=DDSITE#<site>             SK=CONFIG (what prepare_site recorded)
 *   drydock design / parts     PK=DDDESIGN#<id>             SK=META | PART#<part id>
 *   drydock designs, all       GSI3PK=DD#DESIGNS            GSI3SK=<created ISO>#<design id>
 *   designs of a project       GSI1PK=DD#DESIGNS#<project>  GSI1SK=<created ISO>#<design id>
 *   boot-action context        PK=DDBANODE#<node>           SK=META   (one per node, replaced per deploy)
 *   boot-action row            PK=DDBA#<action ULID>        SK=META
 */
export const TABLE_KEYS = { partitionKey: 'PK', sortKey: 'SK' } as const;

export const TABLE_INDEXES = [
  { indexName: 'GSI1', partitionKey: 'GSI1PK', sortKey: 'GSI1SK' },
  { indexName: 'GSI2', partitionKey: 'GSI2PK', sortKey: 'GSI2SK' },
  { indexName: 'GSI3', partitionKey: 'GSI3PK', sortKey: 'GSI3SK' },
  // Issue 16 (H-nodes): sparse node indexes, see the access patterns above.
  { indexName: 'GSI4', partitionKey: 'GSI4PK', sortKey: 'GSI4SK' },
  { indexName: 'GSI5', partitionKey: 'GSI5PK', sortKey: 'GSI5SK' },
  { indexName: 'GSI6', partitionKey: 'GSI6PK', sortKey: 'GSI6SK' },
  { indexName: 'GSI7', partitionKey: 'GSI7PK', sortKey: 'GSI7SK' },
  { indexName: 'GSI8', partitionKey: 'GSI8PK', sortKey: 'GSI8SK' },
  { indexName: 'GSI9', partitionKey: 'GSI9PK', sortKey: 'GSI9SK' },
  { indexName: 'GSI10', partitionKey: 'GSI10PK', sortKey: 'GSI10SK' },
] as const;

/** Epoch seconds; DynamoDB deletes expired items (idempotency records, expired tokens). */
export const TTL_ATTRIBUTE = 'ttl';

export const DEFAULT_TABLE_NAME = 'slipway';
