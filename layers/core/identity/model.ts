import type { Role } from './identity.ts';

/**
 * Keystone-compatible users and application credentials (issue 15). A user belongs to one
 * project (Keystone's `default_project_id`) with its roles there; Slipway has no project
 * entity, so a project's id and name are the same string. Every user lives in the one domain
 * Keystone clients name `default` / `Default`.
 */
export const DEFAULT_DOMAIN = { id: 'default', name: 'Default' } as const;

export interface UserRecord {
  /** 32 hex characters, as Keystone's user ids. */
  id: string;
  /** Unique (a conditional write on the name's own item). */
  name: string;
  project_id: string;
  roles: Role[];
  /** `scrypt$…` (passwords.ts); never leaves the identity code. */
  password_hash: string;
  description?: string;
  created_at: string;
}

export interface AppCredentialRecord {
  id: string;
  /** Unique per user. */
  name: string;
  user_id: string;
  project_id: string;
  /** A subset of the user's roles when it was made; a token gets those the user still has. */
  roles: Role[];
  secret_hash: string;
  /** Keystone's `unrestricted`: may its tokens manage application credentials? */
  unrestricted: boolean;
  description?: string;
  expires_at: string | null;
  created_at: string;
}

/** The users port (layers/aws/dynamo/users.ts). */
export interface UserRepository {
  get(id: string): Promise<UserRecord | undefined>;
  getByName(name: string): Promise<UserRecord | undefined>;
  list(): Promise<UserRecord[]>;
  /** Creates the user; ConflictError when the name is taken (a conditional write, not a read first). */
  create(user: UserRecord): Promise<void>;
  /** Deletes the user and its name; false when it was already gone. */
  delete(user: UserRecord): Promise<boolean>;
  /** Creates a credential; ConflictError for a name the user already has, NotFoundError when the user is gone. */
  createAppCredential(cred: AppCredentialRecord): Promise<void>;
  getAppCredential(id: string): Promise<AppCredentialRecord | undefined>;
  listAppCredentials(userId: string): Promise<AppCredentialRecord[]>;
  /** False when it was already gone. */
  deleteAppCredential(cred: AppCredentialRecord): Promise<boolean>;
}
