// Every screen of the app, in the navigation's order. A screen is a component given the URL's
// argument (what follows `#/<path>/`) and the signed-in user.

import type { FunctionComponent } from "preact";
import type { User } from "../../../src/gen/aimesh/identity/v1/identity_pb.js";
import { Activity } from "./activity.js";
import { Admin } from "./admin.js";
import { Chat } from "./chat.js";
import { Documents } from "./documents.js";
import { Gallery } from "./gallery.js";
import { Jobs } from "./jobs.js";
import { Notes } from "./notes.js";
import { Profile } from "./profile.js";
import { Reports } from "./reports.js";
import { Speech } from "./speech.js";

export interface ScreenProps {
  /** What follows `#/<path>/` in the URL, e.g. a note's id; "" when nothing does. */
  arg: string;
  user: User | null;
}

export interface Screen {
  path: string;
  title: string;
  component: FunctionComponent<ScreenProps>;
  /** Shown to administrators only. */
  admin?: boolean;
}

export const screens: Screen[] = [
  { path: "notes", title: "Notes", component: Notes },
  { path: "documents", title: "Documents", component: Documents },
  { path: "chat", title: "Chat", component: Chat },
  { path: "gallery", title: "Gallery", component: Gallery },
  { path: "jobs", title: "Jobs", component: Jobs },
  { path: "activity", title: "Activity", component: Activity },
  { path: "speech", title: "Speech", component: Speech },
  { path: "reports", title: "Reports", component: Reports },
  { path: "admin", title: "Admin", component: Admin, admin: true },
  { path: "profile", title: "Profile", component: Profile },
];
